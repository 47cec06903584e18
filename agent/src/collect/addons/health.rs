//! The `addon_health` collector: each enabled addon's health check (an
//! HTTP URL, 2xx = OK, or a command, exit 0 = OK) under its own timeout,
//! keeping `last_ok` across runs. Its output is merged into the snapshot
//! by the `addons` part.

use std::collections::BTreeMap;
use std::process::Stdio;

use lull_proto::msg::stats::{AddonHealth, HealthStatus, SystemStatsSnapshot};

use super::config::{AddonConfig, AddonSettings};
use crate::collect::{same_part, CollectFuture, Collected, Collector, Fresh, Output, Part};
use crate::http;
use crate::schedule::secs;

/// The `addon_health` collector's output: health by addon id (merged by
/// [`FactsPart`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPart(pub BTreeMap<String, AddonHealth>);

impl Part for HealthPart {
    fn fill(&self, _: &mut SystemStatsSnapshot, _: &Fresh<'_>) {}

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// The outcome of one health check: OK, or an error code and text.
pub type CheckResult = Result<(), (String, String)>;

/// Maps an HTTP status to a check result (2xx = OK, else `http_<code>`).
pub fn http_result(status: u16) -> CheckResult {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err((format!("http_{status}"), format!("HTTP status {status}")))
    }
}

async fn check_http(url: &str, max_body: usize) -> CheckResult {
    let u = http::Url::parse(url).map_err(|e| ("bad_url".to_string(), e.to_string()))?;
    match http::get(&u, max_body).await {
        Ok(r) => http_result(r.status),
        Err(http::HttpError::Connect(e)) => Err(("connect_error".into(), e)),
        Err(http::HttpError::TooLarge(n)) => Err((
            "too_large".into(),
            format!("response larger than {n} bytes"),
        )),
        Err(e @ http::HttpError::Malformed(_)) => Err(("bad_response".into(), e.to_string())),
        Err(e) => Err(("io_error".into(), e.to_string())),
    }
}

async fn check_command(argv: &[String]) -> CheckResult {
    let Some((prog, args)) = argv.split_first() else {
        return Err(("spawn_error".into(), "empty command".into()));
    };
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ("spawn_error".to_string(), format!("{prog}: {e}")))?;
    let status = child
        .wait()
        .await
        .map_err(|e| ("io_error".to_string(), e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Err((
            format!("exit_{c}"),
            format!("{prog} exited with status {c}"),
        )),
        (None, Some(s)) => Err((
            format!("signal_{s}"),
            format!("{prog} killed by signal {s}"),
        )),
        _ => Err(("exit_unknown".into(), format!("{prog} failed"))),
    }
}

async fn check(a: &AddonConfig, max_body: usize) -> Option<CheckResult> {
    let timeout = secs(a.health_timeout_sec);
    let fut = async {
        if let Some(url) = &a.health_url {
            Some(check_http(url, max_body).await)
        } else if let Some(cmd) = &a.health_command {
            Some(check_command(cmd).await)
        } else {
            None
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        // Dropping the future kills a command (kill_on_drop).
        Err(_) => Some(Err((
            "timeout".into(),
            format!("no answer within {:.3} s", timeout.as_secs_f64()),
        ))),
    }
}

/// Folds a check result into the health record, keeping `last_ok`.
pub fn apply_check(prev_last_ok: Option<f64>, result: CheckResult, now: f64) -> AddonHealth {
    match result {
        Ok(()) => AddonHealth {
            status: HealthStatus::Ok,
            last_checked: Some(now),
            last_ok: Some(now),
            error_code: None,
            error: None,
        },
        Err((code, text)) => AddonHealth {
            status: HealthStatus::Error,
            last_checked: Some(now),
            last_ok: prev_last_ok,
            error_code: Some(code),
            error: Some(text),
        },
    }
}

/// The `addon_health` collector.
pub struct AddonHealthCollector {
    addons: Vec<AddonConfig>,
    max_body: usize,
    last_ok: BTreeMap<String, f64>,
}

impl AddonHealthCollector {
    /// Checks the enabled addons of `addons` that declare a check.
    pub fn new(addons: Vec<AddonConfig>, settings: &AddonSettings) -> Self {
        AddonHealthCollector {
            addons: addons
                .into_iter()
                .filter(|a| a.enabled && (a.health_url.is_some() || a.health_command.is_some()))
                .collect(),
            max_body: settings.health_max_body_bytes,
            last_ok: BTreeMap::new(),
        }
    }
}

impl Collector for AddonHealthCollector {
    fn name(&self) -> &'static str {
        "addon_health"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move {
            let max_body = self.max_body;
            let results =
                futures::future::join_all(self.addons.iter().map(|a| check(a, max_body))).await;
            let now = lull_common::runtime::now_unix();
            let mut out = BTreeMap::new();
            for (a, r) in self.addons.iter().zip(results) {
                let Some(r) = r else { continue };
                let h = apply_check(self.last_ok.get(&a.id).copied(), r, now);
                if let Some(ok) = h.last_ok {
                    self.last_ok.insert(a.id.clone(), ok);
                }
                out.insert(a.id.clone(), h);
            }
            Ok(Collected::ok(Output::new(HealthPart(out))))
        })
    }
}
