//! The report spool: workers and build launchers hand reports to the agent
//! as JSON files in `LULL_SPOOL_DIR` (written under a temporary name, then
//! renamed; or with `lull-agent report FILE`). The agent publishes each file
//! to the JetStream stream `LULL_REPORTS` with `Nats-Msg-Id` set to the
//! record id and deletes it only after the stream acknowledged it, so a
//! report is never lost and a resend is dropped by the stream. While NATS
//! is down the files wait. A file that cannot be a report is moved to
//! `failed/` with a `.error` file beside it saying why.
//!
//! Only the routing is checked here: the record id (`execution_id`,
//! `build_id` or `event_id`, in that order), the subject key
//! (`worker_name` or `region`) and that a worker report's `host_id`, when
//! given, is this host's; the coordinator validates the rest. Reports go
//! out on `lull.report.<kind>.<host_id>.<key>`: the agent publishes only
//! under its own host id, which the generated NATS permissions enforce.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::Client;
use lull_proto::subjects::{Subjects, REPORTS_STREAM};
use lull_proto::validate;
use serde_json::Value;
use tokio::sync::watch;

use crate::config::SpoolConfig;
use crate::schedule::secs;

pub mod metric;

pub use metric::{
    zero_metrics, METRICS, SPOOL_DUPLICATES, SPOOL_FAILED, SPOOL_FILES, SPOOL_OLDEST_AGE,
    SPOOL_PUBLISHED, SPOOL_PUBLISH_ERRORS,
};

/// Name of the quarantine directory inside the spool.
pub const FAILED_DIR: &str = "failed";

/// Which kind of report a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A worker execution report (`execution_id`, `worker_name`).
    Worker,
    /// A build record (`build_id`, `region`).
    Build,
    /// A fatigue event without a build (`event_id`, `region`).
    Fatigue,
}

impl ReportKind {
    /// Label for metrics and file names.
    pub fn label(self) -> &'static str {
        match self {
            ReportKind::Worker => "worker",
            ReportKind::Build => "build",
            ReportKind::Fatigue => "fatigue",
        }
    }
}

/// Where a report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its kind.
    pub kind: ReportKind,
    /// The record id (the `Nats-Msg-Id`).
    pub id: String,
    /// The subject.
    pub subject: String,
}

/// Whether a directory entry is a report waiting to be sent: a name ending
/// in `.json` that does not start with `.`. Anything else (temporary names
/// such as `.x.json.tmp` or `x.json.part`, editor backups) is left alone.
pub fn is_candidate(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".json") && name.len() > ".json".len()
}

fn str_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    k: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{k} must be a string, got {other}")),
    }
}

/// Finds a report's id and subject for this agent's `host_id` (pure). A
/// worker report naming another host is refused: the coordinator would
/// reject it (the subject names the publishing host).
pub fn route(
    bytes: &[u8],
    subjects: &Subjects,
    host_id: &str,
    max_bytes: usize,
) -> Result<Route, String> {
    validate::check_size(bytes, max_bytes).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("not a JSON object".into());
    };
    let (kind, id_key, key_key) = if obj.contains_key("execution_id") {
        (ReportKind::Worker, "execution_id", "worker_name")
    } else if obj.contains_key("build_id") {
        (ReportKind::Build, "build_id", "region")
    } else if obj.contains_key("event_id") {
        (ReportKind::Fatigue, "event_id", "region")
    } else {
        return Err("no execution_id, build_id or event_id: not a report".into());
    };
    let id = str_field(&obj, id_key)?.ok_or_else(|| format!("{id_key} is missing"))?;
    validate::id(id_key, id).map_err(|e| e.to_string())?;
    let key = str_field(&obj, key_key)?.ok_or_else(|| format!("{key_key} is missing"))?;
    validate::subject_token(key_key, key).map_err(|e| e.to_string())?;
    if kind == ReportKind::Worker {
        if let Some(h) = str_field(&obj, "host_id")? {
            if h != host_id {
                return Err(format!(
                    "host_id {h:?} is not this host's ({host_id:?}): an agent reports only for its own host"
                ));
            }
        }
    }
    let subject = subjects.report_by(kind.label(), host_id, key);
    Ok(Route {
        kind,
        id: id.to_string(),
        subject,
    })
}

/// A worker report without `host_id` gets this agent's host id (the
/// report came from this host). Returns the new payload, or `None` when
/// nothing needs to change.
pub fn with_host_id(bytes: &[u8], host_id: &str) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object_mut()?;
    if !matches!(obj.get("host_id"), None | Some(Value::Null)) {
        return None;
    }
    obj.insert("host_id".into(), Value::String(host_id.to_string()));
    serde_json::to_vec(&v).ok()
}

/// What to do with a spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it.
    Ready(Route),
    /// Leave it for now (it does not parse yet but is younger than the
    /// settle time: its writer may still be writing it in place).
    Wait,
    /// Quarantine it with this reason.
    Malformed(String),
}

/// Classifies a file's content given its age (pure).
pub fn classify(
    bytes: &[u8],
    age_sec: f64,
    settle_sec: f64,
    subjects: &Subjects,
    host_id: &str,
    max_bytes: usize,
) -> Verdict {
    match route(bytes, subjects, host_id, max_bytes) {
        Ok(r) => Verdict::Ready(r),
        Err(_) if age_sec < settle_sec => Verdict::Wait,
        Err(e) => Verdict::Malformed(e),
    }
}

/// A file name for a report: `<kind>-<id>-<unique>.json`, the id reduced
/// to safe characters.
pub fn file_name(route: &Route, unique: &str) -> String {
    let safe: String = route
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{}-{safe}-{unique}.json", route.kind.label())
}

/// A report could not be handed off.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// It is not a valid report.
    #[error("invalid report: {0}")]
    Invalid(String),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", std::process::id())
}

/// Validates a report and drops it into the spool atomically: it is written
/// and synced under a hidden temporary name, then renamed into place and
/// the directory synced. Returns the final path.
pub fn write_report(
    dir: &Path,
    bytes: &[u8],
    subjects: &Subjects,
    host_id: &str,
    max_bytes: usize,
) -> Result<PathBuf, SpoolError> {
    use std::io::Write;
    let r = route(bytes, subjects, host_id, max_bytes).map_err(SpoolError::Invalid)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = file_name(&r, &unique_suffix());
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(&name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&dest)(e));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// Moves a malformed file to `failed/` and writes `<name>.error` beside it.
/// Returns the new path.
pub fn quarantine(dir: &Path, path: &Path, reason: &str, now: f64) -> std::io::Result<PathBuf> {
    let failed = dir.join(FAILED_DIR);
    std::fs::create_dir_all(&failed)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.json".into());
    let mut dest = failed.join(&name);
    if dest.exists() {
        dest = failed.join(format!("{name}.{}", unique_suffix()));
    }
    std::fs::rename(path, &dest)?;
    let err_path = PathBuf::from(format!("{}.error", dest.display()));
    std::fs::write(
        &err_path,
        format!("reason: {reason}\nquarantined_at: {now}\nfile: {name}\n"),
    )?;
    Ok(dest)
}

/// A report file waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// Last modification.
    pub modified: SystemTime,
}

/// Lists the candidate files of the spool, oldest first.
pub fn scan(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_candidate(name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            path: e.path(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(out)
}

/// The stream settings the coordinator uses (same subjects, file storage,
/// duplicate window), so whichever side creates it first, it is the same.
pub fn stream_config(subjects: &Subjects, duplicate_window: Duration) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: REPORTS_STREAM.to_string(),
        subjects: vec![subjects.reports_all()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window,
        ..Default::default()
    }
}

/// Settings of the spool loop.
#[derive(Debug, Clone)]
pub struct SpoolRun {
    /// The spool directory.
    pub dir: PathBuf,
    /// Tunables.
    pub cfg: SpoolConfig,
    /// Subjects.
    pub subjects: Subjects,
    /// Largest report, bytes.
    pub max_bytes: usize,
    /// This host, filled into worker reports that lack `host_id`.
    pub host_id: String,
}

enum Pass {
    /// Everything that could be sent was sent.
    Done,
    /// Stop this scan and retry later.
    Retry,
    /// Stop, and check the stream before the next attempt.
    NoStream,
}

/// Whether the reports stream exists, creating it (idempotently, with the
/// coordinator's settings) when allowed.
async fn ensure_stream(js: &jetstream::Context, run: &SpoolRun) -> bool {
    if js.get_stream(REPORTS_STREAM).await.is_ok() {
        return true;
    }
    if !run.cfg.create_stream {
        tracing::debug!("waiting for the coordinator to create the {REPORTS_STREAM} stream");
        return false;
    }
    let cfg = stream_config(
        &run.subjects,
        Duration::from_secs(run.cfg.duplicate_window_sec),
    );
    match js.get_or_create_stream(cfg).await {
        Ok(_) => {
            tracing::info!(stream = REPORTS_STREAM, "reports stream is ready");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the reports stream yet; retrying");
            false
        }
    }
}

/// Files already known to be valid reports, by path and modification time,
/// so that they are not read again every scan while NATS is away.
type Checked = HashSet<(PathBuf, SystemTime)>;

async fn quarantine_file(run: &SpoolRun, e: &Entry, reason: String) {
    let (dir, path) = (run.dir.clone(), e.path.clone());
    let now = lull_common::runtime::now_unix();
    let r = reason.clone();
    match tokio::task::spawn_blocking(move || quarantine(&dir, &path, &r, now)).await {
        Ok(Ok(dest)) => {
            metrics::counter!(SPOOL_FAILED.name).increment(1);
            tracing::warn!(file = %dest.display(), %reason, "malformed report quarantined");
        }
        Ok(Err(err)) => {
            tracing::error!(path = %e.path.display(), error = %err, "cannot quarantine report")
        }
        Err(err) => tracing::error!(error = %err, "quarantine task failed"),
    }
}

/// Classifies the files of `chunk`, quarantines the malformed ones and,
/// with a JetStream context (connected, stream present), publishes the
/// good ones and deletes each after its ack.
async fn handle_chunk(
    js: Option<&jetstream::Context>,
    run: &SpoolRun,
    chunk: &[Entry],
    checked: &mut Checked,
) -> Pass {
    let now = SystemTime::now();
    let mut pending = Vec::new();
    for e in chunk {
        if js.is_none() && checked.contains(&(e.path.clone(), e.modified)) {
            continue;
        }
        let bytes = match tokio::fs::read(&e.path).await {
            Ok(b) => b,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                tracing::warn!(path = %e.path.display(), error = %err, "cannot read spool file");
                continue;
            }
        };
        let age = now
            .duration_since(e.modified)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        match classify(
            &bytes,
            age,
            run.cfg.settle_sec,
            &run.subjects,
            &run.host_id,
            run.max_bytes,
        ) {
            Verdict::Wait => {}
            Verdict::Malformed(reason) => quarantine_file(run, e, reason).await,
            Verdict::Ready(route) => {
                let Some(js) = js else {
                    checked.insert((e.path.clone(), e.modified));
                    continue;
                };
                let bytes = match route.kind {
                    ReportKind::Worker => with_host_id(&bytes, &run.host_id).unwrap_or(bytes),
                    _ => bytes,
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, route.id.as_str());
                match js
                    .publish_with_headers(route.subject.clone(), headers, bytes.into())
                    .await
                {
                    Ok(ack) => pending.push((e, route, ack)),
                    Err(err) => {
                        metrics::counter!(SPOOL_PUBLISH_ERRORS.name, "reason" => "error")
                            .increment(1);
                        tracing::debug!(error = %err, "report publish failed");
                        break;
                    }
                }
            }
        }
    }
    let mut pass = Pass::Done;
    for (e, route, ack) in pending {
        match tokio::time::timeout(secs(run.cfg.ack_timeout_sec), ack).await {
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    metrics::counter!(SPOOL_DUPLICATES.name).increment(1);
                }
                match tokio::fs::remove_file(&e.path).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => tracing::error!(
                        path = %e.path.display(), error = %err,
                        "report acknowledged but cannot be deleted; it will be resent (and dropped as a duplicate)"
                    ),
                }
                metrics::counter!(SPOOL_PUBLISHED.name, "kind" => route.kind.label()).increment(1);
            }
            Ok(Err(err)) if err.kind() == PublishErrorKind::StreamNotFound => {
                metrics::counter!(SPOOL_PUBLISH_ERRORS.name, "reason" => "no_stream").increment(1);
                pass = Pass::NoStream;
            }
            Ok(Err(err)) => {
                metrics::counter!(SPOOL_PUBLISH_ERRORS.name, "reason" => "error").increment(1);
                tracing::debug!(error = %err, id = %route.id, "report not acknowledged");
                if matches!(pass, Pass::Done) {
                    pass = Pass::Retry;
                }
            }
            Err(_) => {
                metrics::counter!(SPOOL_PUBLISH_ERRORS.name, "reason" => "timeout").increment(1);
                // No ack at all: the stream may be missing while something
                // else subscribes to the subject (no "no responders").
                pass = Pass::NoStream;
            }
        }
    }
    pass
}

fn spool_gauges(entries: &[Entry]) {
    metrics::gauge!(SPOOL_FILES.name).set(entries.len() as f64);
    let oldest = entries
        .iter()
        .map(|e| e.modified)
        .min()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(SPOOL_OLDEST_AGE.name).set(oldest);
}

/// Runs the spool loop until `stop`.
pub async fn run(run: SpoolRun, client: Client, mut stop: watch::Receiver<bool>) {
    let mut js = jetstream::new(client.clone());
    js.set_timeout(secs(run.cfg.ack_timeout_sec));
    let mut stream_ready = false;
    let mut checked = Checked::new();
    if run.cfg.create_dir {
        if let Err(e) = tokio::fs::create_dir_all(run.dir.join(FAILED_DIR)).await {
            tracing::error!(dir = %run.dir.display(), error = %e, "cannot create the spool directory");
        }
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(secs(run.cfg.scan_interval_sec)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let dir = run.dir.clone();
        let entries = match tokio::task::spawn_blocking(move || scan(&dir)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::debug!(dir = %run.dir.display(), error = %e, "cannot scan the spool");
                continue;
            }
            Err(_) => continue,
        };
        spool_gauges(&entries);
        let current: Checked = entries
            .iter()
            .map(|e| (e.path.clone(), e.modified))
            .collect();
        checked.retain(|k| current.contains(k));
        if entries.is_empty() {
            continue;
        }
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        if connected && !stream_ready {
            stream_ready = ensure_stream(&js, &run).await;
        }
        let online = (connected && stream_ready).then_some(&js);
        let take = entries.len().min(run.cfg.max_files_per_scan.max(1));
        for chunk in entries[..take].chunks(run.cfg.batch.max(1)) {
            if *stop.borrow() {
                return;
            }
            match handle_chunk(online, &run, chunk, &mut checked).await {
                Pass::Done => {}
                Pass::Retry => break,
                Pass::NoStream => {
                    stream_ready = false;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subj() -> Subjects {
        Subjects::default()
    }

    #[test]
    fn candidates() {
        assert!(is_candidate("worker-1.json"));
        assert!(!is_candidate(".worker-1.json.tmp"));
        assert!(!is_candidate(".hidden.json"));
        assert!(!is_candidate("worker-1.json.tmp"));
        assert!(!is_candidate("worker-1.json.part"));
        assert!(!is_candidate("worker-1.json~"));
        assert!(!is_candidate(".json"));
        assert!(!is_candidate("notes.txt"));
    }

    #[test]
    fn routes() {
        let w = br#"{"execution_id": "e-1", "worker_name": "sse_guardian", "outcome": "SUCCESS"}"#;
        assert_eq!(
            route(w, &subj(), "web1", 1 << 20).unwrap(),
            Route {
                kind: ReportKind::Worker,
                id: "e-1".into(),
                subject: "lull.report.worker.web1.sse_guardian".into()
            }
        );
        let b = br#"{"build_id": "abc123-xyz789", "region": "us-west2"}"#;
        assert_eq!(
            route(b, &subj(), "web1", 1 << 20).unwrap().subject,
            "lull.report.build.web1.us-west2"
        );
        let f = br#"{"event_id": "ev-9", "region": "eu-west1", "fatigue_reason": "timeout"}"#;
        let r = route(f, &subj(), "web1", 1 << 20).unwrap();
        assert_eq!(
            (r.kind, r.subject.as_str()),
            (ReportKind::Fatigue, "lull.report.fatigue.web1.eu-west1")
        );
        // A worker report for this host, or for no host, goes; one for
        // another host is refused (the coordinator would reject it).
        let own = br#"{"execution_id": "e-2", "worker_name": "w", "host_id": "web1"}"#;
        assert!(route(own, &subj(), "web1", 1 << 20).is_ok());
        let other = br#"{"execution_id": "e-3", "worker_name": "w", "host_id": "web2"}"#;
        let why = route(other, &subj(), "web1", 1 << 20).unwrap_err();
        assert!(why.contains("web2") && why.contains("own host"), "{why}");
    }

    #[test]
    fn malformed_reports_say_why() {
        let why = |b: &[u8]| route(b, &subj(), "h", 1000).unwrap_err();
        assert!(why(b"{not json").starts_with("not JSON"));
        assert_eq!(why(b"[1,2]"), "not a JSON object");
        assert!(why(br#"{"foo": 1}"#).contains("not a report"));
        assert!(why(br#"{"execution_id": 5, "worker_name": "w"}"#).contains("must be a string"));
        assert!(why(br#"{"execution_id": "e"}"#).contains("worker_name is missing"));
        assert!(why(br#"{"build_id": "b", "region": "us.west"}"#).contains("region"));
        assert!(why(br#"{"build_id": " ", "region": "r"}"#).contains("build_id"));
        assert!(why(&vec![b' '; 1001]).contains("1000"));
    }

    #[test]
    fn worker_reports_get_the_host_id() {
        let b = with_host_id(br#"{"execution_id": "e", "worker_name": "w"}"#, "web-1").unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["host_id"], "web-1");
        assert_eq!(v["execution_id"], "e");
        assert!(with_host_id(br#"{"execution_id": "e", "host_id": "other"}"#, "web-1").is_none());
        let b = with_host_id(br#"{"host_id": null}"#, "web-1").unwrap();
        assert!(String::from_utf8(b).unwrap().contains("web-1"));
    }

    #[test]
    fn young_files_wait_old_ones_are_quarantined() {
        let s = subj();
        assert_eq!(
            classify(b"{\"execution_", 1.0, 5.0, &s, "h", 1000),
            Verdict::Wait
        );
        assert!(matches!(
            classify(b"{\"execution_", 6.0, 5.0, &s, "h", 1000),
            Verdict::Malformed(_)
        ));
        let ok = br#"{"event_id": "x", "region": "r"}"#;
        assert!(matches!(
            classify(ok, 0.0, 5.0, &s, "h", 1000),
            Verdict::Ready(_)
        ));
    }

    #[test]
    fn names_are_safe() {
        let r = Route {
            kind: ReportKind::Build,
            id: "a/b c..d".into(),
            subject: String::new(),
        };
        assert_eq!(file_name(&r, "1"), "build-a_b_c__d-1.json");
    }

    #[test]
    fn write_scan_and_quarantine() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().join("spool");
        let w = br#"{"execution_id": "e-1", "worker_name": "w1"}"#;
        let p = write_report(&spool, w, &subj(), "h", 1 << 20).unwrap();
        assert!(p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("worker-e-1-"));
        assert!(matches!(
            write_report(&spool, b"{}", &subj(), "h", 1 << 20),
            Err(SpoolError::Invalid(_))
        ));
        // a writer's temp file and a directory are not candidates
        std::fs::write(spool.join(".x.json.tmp"), b"{").unwrap();
        std::fs::create_dir(spool.join("sub.json")).unwrap();
        std::fs::write(spool.join("bad.json"), b"{oops").unwrap();
        let entries = scan(&spool).unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        let bad = entries
            .iter()
            .find(|e| e.path.ends_with("bad.json"))
            .unwrap();
        let dest = quarantine(&spool, &bad.path, "not JSON: x", 5.0).unwrap();
        assert_eq!(dest, spool.join("failed/bad.json"));
        let err = std::fs::read_to_string(spool.join("failed/bad.json.error")).unwrap();
        assert!(err.contains("reason: not JSON: x"), "{err}");
        assert_eq!(scan(&spool).unwrap().len(), 1);
        // a second file of the same name does not overwrite the first
        std::fs::write(spool.join("bad.json"), b"{again").unwrap();
        let dest2 = quarantine(&spool, &spool.join("bad.json"), "again", 6.0).unwrap();
        assert_ne!(dest2, dest);
        assert!(dest.exists() && dest2.exists());
    }

    #[test]
    fn same_stream_settings_as_the_coordinator() {
        let c = stream_config(&Subjects::new("acme"), Duration::from_secs(3600));
        assert_eq!(c.name, "LULL_REPORTS");
        assert_eq!(c.subjects, vec!["acme.report.>".to_string()]);
        assert_eq!(c.duplicate_window, Duration::from_secs(3600));
    }
}
