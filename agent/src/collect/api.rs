//! Api collector family (`api`, optional: only with an `[api]` table,
//! which it owns): request rate, error rate and a latency
//! quantile (p95 by default) of a service on this host, derived from its
//! local Prometheus endpoint. Each run scrapes the endpoint with the tiny
//! HTTP client and compares with the previous scrape: rps from the request
//! counter's delta, the error rate from the error counter's (or the
//! requests whose status label starts with `5`), and the quantile from the
//! delta of the latency histogram's buckets, interpolated the way
//! `histogram_quantile` does. Metric and label names are configurable.

use std::time::Instant;

use lull_proto::msg::stats::{ApiStats, SystemStatsSnapshot};
use serde::{Deserialize, Serialize};

use super::{
    same_part, CollectError, CollectFuture, Collected, Collector, Ctx, Family, Fresh, Output, Part,
};
use crate::http;
use crate::schedule::Schedule;

/// Unit of a latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyUnit {
    /// Bucket bounds in seconds (the Prometheus convention).
    #[default]
    Seconds,
    /// Bucket bounds in milliseconds.
    Milliseconds,
}

/// The api collector: a local Prometheus endpoint of a host service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Metrics URL (`http://` only). Default `http://127.0.0.1:8080/metrics`.
    pub url: String,
    /// Request counter (summed over all label sets). Default
    /// `http_requests_total`.
    pub requests_metric: String,
    /// Error counter; when absent, errors are the requests whose
    /// `error_label` starts with one of `error_value_prefixes`.
    pub errors_metric: Option<String>,
    /// Label holding the status. Default `status`.
    pub error_label: String,
    /// Status prefixes counted as errors. Default `["5"]`.
    pub error_value_prefixes: Vec<String>,
    /// Latency histogram base name (its `_bucket` series are used). Default
    /// `http_request_duration_seconds`.
    pub latency_metric: String,
    /// Unit of the histogram's bucket bounds. Default `seconds`.
    pub latency_unit: LatencyUnit,
    /// The quantile reported as `p95_ms`. Default 0.95.
    pub quantile: f64,
    /// Largest response read, bytes. Default 4194304.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            url: "http://127.0.0.1:8080/metrics".into(),
            requests_metric: "http_requests_total".into(),
            errors_metric: None,
            error_label: "status".into(),
            error_value_prefixes: vec!["5".into()],
            latency_metric: "http_request_duration_seconds".into(),
            latency_unit: LatencyUnit::Seconds,
            quantile: 0.95,
            max_body_bytes: 4 << 20,
        }
    }
}

/// The api family's config sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Local Prometheus endpoint of a host service; absent = no `api` block.
    pub api: Option<ApiConfig>,
}

/// The api family.
pub struct Api;

impl Family for Api {
    type Settings = Settings;
    /// The api scrape (only with `[api]`): every 5 s, jitter 0.5 s,
    /// timeout 3 s.
    const SCHEDULES: &'static [(&'static str, Schedule)] = &[("api", Schedule::new(5.0, 0.5, 3.0))];
    const DELTA: &'static [&'static str] = &["api"];

    fn check(s: &Settings) -> Result<(), String> {
        if let Some(api) = &s.api {
            http::Url::parse(&api.url).map_err(|e| format!("api.url: {e}"))?;
            if !(api.quantile > 0.0 && api.quantile < 1.0) {
                return Err(format!(
                    "api.quantile must be in (0, 1), got {}",
                    api.quantile
                ));
            }
        }
        Ok(())
    }

    fn build(s: &Settings, _: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        let Some(api) = &s.api else {
            return Vec::new();
        };
        match ApiCollector::new(api.clone()) {
            Ok(c) => vec![Box::new(c)],
            Err(e) => {
                tracing::error!(error = %e, "api collector disabled");
                Vec::new()
            }
        }
    }
}

/// The snapshot's `api` block (`None` until two scrapes give a rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiPart(pub Option<ApiStats>);

impl Part for ApiPart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, _: &Fresh<'_>) {
        snap.api = self.0;
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses one line of the text exposition format; `None` for comments,
/// blank and malformed lines.
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut val = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => val.push('\n'),
                                other => val.push(other),
                            },
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key).trim().to_string(), val));
                }
                c => key.push(c),
            }
        }
        rest = &r[end..];
    }
    let value = parse_value(rest.split_ascii_whitespace().next()?)?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The figures of one scrape that the collector needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scrape {
    /// Requests, summed over label sets.
    pub requests: f64,
    /// Failed requests.
    pub errors: f64,
    /// Cumulative histogram buckets `(le, count)`, summed over label sets,
    /// sorted by `le`.
    pub buckets: Vec<(f64, f64)>,
}

/// Extracts the configured counters and histogram from a scrape.
pub fn extract(text: &str, cfg: &ApiConfig) -> Scrape {
    let bucket_name = format!("{}_bucket", cfg.latency_metric);
    let mut s = Scrape::default();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for sample in text.lines().filter_map(parse_line) {
        if !sample.value.is_finite() && sample.name != bucket_name {
            continue;
        }
        if sample.name == cfg.requests_metric {
            s.requests += sample.value;
            if cfg.errors_metric.is_none()
                && sample.label(&cfg.error_label).is_some_and(|v| {
                    cfg.error_value_prefixes
                        .iter()
                        .any(|p| v.starts_with(p.as_str()))
                })
            {
                s.errors += sample.value;
            }
        }
        if cfg.errors_metric.as_deref() == Some(sample.name.as_str()) {
            s.errors += sample.value;
        }
        if sample.name == bucket_name && sample.value.is_finite() {
            let Some(le) = sample.label("le").and_then(parse_value) else {
                continue;
            };
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some(b) => b.1 += sample.value,
                None => buckets.push((le, sample.value)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s.buckets = buckets;
    s
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside
/// the bucket (as Prometheus' `histogram_quantile`); `None` without
/// observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (i, &(le, count)) in buckets.iter().enumerate() {
        if count >= rank {
            if le.is_infinite() {
                // Above the highest finite bound: report that bound.
                return Some(if i == 0 { 0.0 } else { buckets[i - 1].0 });
            }
            if count == prev_count {
                return Some(le);
            }
            let start = if i == 0 && le <= 0.0 { le } else { prev_le };
            return Some(start + (le - start) * (rank - prev_count) / (count - prev_count));
        }
        prev_le = le;
        prev_count = count;
    }
    buckets
        .iter()
        .rev()
        .find(|(le, _)| le.is_finite())
        .map(|b| b.0)
}

/// Bucket deltas between two scrapes (missing previous buckets count as
/// 0), made monotonic.
pub fn bucket_delta(prev: &[(f64, f64)], cur: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut running: f64 = 0.0;
    cur.iter()
        .map(|&(le, c)| {
            let p = prev.iter().find(|(b, _)| *b == le).map_or(0.0, |b| b.1);
            running = running.max((c - p).max(0.0));
            (le, running)
        })
        .collect()
}

/// Api figures from two scrapes `elapsed_sec` apart; `None` after a
/// counter reset (the next scrape gives a rate again).
pub fn api_stats(
    prev: &Scrape,
    cur: &Scrape,
    elapsed_sec: f64,
    cfg: &ApiConfig,
) -> Option<ApiStats> {
    if elapsed_sec <= 0.0 || cur.requests < prev.requests || cur.errors < prev.errors {
        return None;
    }
    let dreq = cur.requests - prev.requests;
    let derr = cur.errors - prev.errors;
    let error_rate = if dreq > 0.0 {
        (derr / dreq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let scale = match cfg.latency_unit {
        LatencyUnit::Seconds => 1000.0,
        LatencyUnit::Milliseconds => 1.0,
    };
    let p = quantile(cfg.quantile, &bucket_delta(&prev.buckets, &cur.buckets)).unwrap_or(0.0);
    let p95_ms = if p.is_finite() {
        (p * scale).max(0.0)
    } else {
        0.0
    };
    Some(ApiStats {
        rps: dreq / elapsed_sec,
        error_rate,
        p95_ms,
    })
}

/// The api collector.
pub struct ApiCollector {
    cfg: ApiConfig,
    url: http::Url,
    prev: Option<(Instant, Scrape)>,
}

impl ApiCollector {
    /// Scrapes `cfg.url` (checked by the config).
    pub fn new(cfg: ApiConfig) -> Result<Self, http::HttpError> {
        Ok(ApiCollector {
            url: http::Url::parse(&cfg.url)?,
            cfg,
            prev: None,
        })
    }
}

impl Collector for ApiCollector {
    fn name(&self) -> &'static str {
        "api"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move {
            let resp = http::get(&self.url, self.cfg.max_body_bytes)
                .await
                .map_err(|e| CollectError::Io(format!("{}: {e}", self.cfg.url)))?;
            if resp.status != 200 {
                return Err(CollectError::Io(format!(
                    "{}: HTTP status {}",
                    self.cfg.url, resp.status
                )));
            }
            let text = String::from_utf8_lossy(&resp.body);
            let cur = extract(&text, &self.cfg);
            let now = Instant::now();
            let stats = self.prev.as_ref().and_then(|(at, p)| {
                api_stats(p, &cur, now.duration_since(*at).as_secs_f64(), &self.cfg)
            });
            self.prev = Some((now, cur));
            Ok(Collected::ok(Output::new(ApiPart(stats))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let s = parse_line(
            r#"http_requests_total{method="GET",status="200",path="/a\"b"} 1027 1395066363000"#,
        )
        .unwrap();
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.label("status"), Some("200"));
        assert_eq!(s.label("path"), Some("/a\"b"));
        assert_eq!(s.value, 1027.0);
        assert_eq!(parse_line("up 1").unwrap().value, 1.0);
        assert!(parse_line("# HELP up x").is_none());
        assert!(parse_line("broken{a=\"x} 1").is_none());
        let inf = parse_line(r#"h_bucket{le="+Inf"} 5"#).unwrap();
        assert_eq!(inf.label("le"), Some("+Inf"));
    }

    fn scrape(req_ok: f64, req_err: f64, b: [f64; 4]) -> String {
        format!(
            "# TYPE http_requests_total counter\n\
http_requests_total{{status=\"200\"}} {req_ok}\n\
http_requests_total{{status=\"503\"}} {req_err}\n\
http_request_duration_seconds_bucket{{le=\"0.1\"}} {}\n\
http_request_duration_seconds_bucket{{le=\"0.5\"}} {}\n\
http_request_duration_seconds_bucket{{le=\"1\"}} {}\n\
http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
http_request_duration_seconds_sum 1\n",
            b[0], b[1], b[2], b[3]
        )
    }

    #[test]
    fn rates_and_quantile_from_two_scrapes() {
        let cfg = ApiConfig::default();
        let a = extract(&scrape(100.0, 0.0, [50.0, 90.0, 100.0, 100.0]), &cfg);
        assert_eq!(a.requests, 100.0);
        assert_eq!(a.buckets.len(), 4);
        // +100 requests in 10 s, 10 of them errors; latencies: 0 in <=0.1,
        // 80 in (0.1, 0.5], 20 in (0.5, 1]
        let b = extract(&scrape(190.0, 10.0, [50.0, 170.0, 200.0, 200.0]), &cfg);
        let s = api_stats(&a, &b, 10.0, &cfg).unwrap();
        assert_eq!(s.rps, 10.0);
        assert!((s.error_rate - 0.1).abs() < 1e-9);
        // rank 95 of 100: 15 into the (0.5, 1] bucket of 20 -> 0.875 s
        assert!((s.p95_ms - 875.0).abs() < 1e-6, "{}", s.p95_ms);
        // counter reset
        assert!(api_stats(&b, &a, 10.0, &cfg).is_none());
        // no traffic
        let z = api_stats(&b, &b, 10.0, &cfg).unwrap();
        assert_eq!((z.rps, z.error_rate, z.p95_ms), (0.0, 0.0, 0.0));
    }

    #[test]
    fn quantile_edges() {
        assert_eq!(quantile(0.95, &[]), None);
        assert_eq!(quantile(0.95, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        // everything above the highest bound
        assert_eq!(
            quantile(0.95, &[(1.0, 0.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
        // first bucket interpolates from 0
        assert_eq!(
            quantile(0.5, &[(2.0, 10.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
    }

    #[test]
    fn explicit_error_counter_and_millis() {
        let cfg = ApiConfig {
            requests_metric: "req_total".into(),
            errors_metric: Some("err_total".into()),
            latency_metric: "lat_ms".into(),
            latency_unit: LatencyUnit::Milliseconds,
            ..Default::default()
        };
        let a = extract("req_total 10\nerr_total 1\nlat_ms_bucket{le=\"100\"} 10\nlat_ms_bucket{le=\"+Inf\"} 10\n", &cfg);
        let b = extract("req_total 20\nerr_total 6\nlat_ms_bucket{le=\"100\"} 20\nlat_ms_bucket{le=\"+Inf\"} 20\n", &cfg);
        let s = api_stats(&a, &b, 1.0, &cfg).unwrap();
        assert_eq!(s.rps, 10.0);
        assert_eq!(s.error_rate, 0.5);
        assert_eq!(s.p95_ms, 95.0);
    }

    #[tokio::test]
    async fn scrapes_a_local_endpoint() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for n in [100.0, 150.0] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                let body = scrape(n, 0.0, [n, n, n, n]);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let mut c = ApiCollector::new(ApiConfig {
            url: format!("http://127.0.0.1:{port}/metrics"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.collect().await.unwrap().output,
            Output::new(ApiPart(None))
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Some(ApiPart(Some(s))) = c.collect().await.unwrap().output.get().copied() else {
            panic!("no api stats")
        };
        assert!(s.rps > 0.0);
        assert!(s.p95_ms > 0.0 && s.p95_ms <= 100.0, "{}", s.p95_ms);
    }
}
