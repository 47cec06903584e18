//! Helpers shared by the deploy, observability and NATS-permission suites:
//! the repository root, finding (and when missing, installing) external
//! tools such as `promtool`, running a command, reading YAML, and small
//! PromQL and Prometheus HTTP API helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The repository root (the parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent")
        .to_path_buf()
}

/// `deploy/<rel>` in the repository.
pub fn deploy(rel: &str) -> PathBuf {
    repo_root().join("deploy").join(rel)
}

/// Reads a file of the repository as text.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses one YAML document.
pub fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Parses every document of a multi-document YAML file (empty ones skipped).
pub fn yaml_docs(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Finds `bin` on `PATH` (and in /usr/sbin, /usr/bin).
pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Serialises installs: tests of one binary may run in parallel.
static INSTALL: Mutex<()> = Mutex::new(());

/// Runs `scripts/install-deploy-tools.sh <tool>` (once per process and
/// tool at a time) and reports what went wrong, if anything.
pub fn install_tool(tool: &str) -> Result<(), String> {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let script = repo_root().join("scripts/install-deploy-tools.sh");
    let out = Command::new(&script)
        .arg(tool)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {tool} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `bin`, installing `tool` with `scripts/install-deploy-tools.sh` when it
/// is missing. `Err` says why it is still unavailable.
pub fn ensure_bin(bin: &str, tool: &str) -> Result<PathBuf, String> {
    if let Some(p) = which(bin) {
        return Ok(p);
    }
    install_tool(tool)?;
    which(bin).ok_or_else(|| format!("{bin} still not found after installing {tool}"))
}

/// `promtool` and `prometheus`, installed from Debian when missing. These
/// are required: the only acceptable reason to go without is an install
/// that cannot work (printed), in which case `None` is returned.
pub fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let promtool = ensure_bin("promtool", "prometheus");
    let prometheus = ensure_bin("prometheus", "prometheus");
    match (promtool, prometheus) {
        (Ok(a), Ok(b)) => Some((a, b)),
        (a, b) => {
            let why = [a.err(), b.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            assert!(
                !why.contains("still not found"),
                "the prometheus package installed but its tools are missing: {why}"
            );
            eprintln!("SKIPPED: promtool/prometheus unavailable and cannot be installed: {why}");
            None
        }
    }
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Panics with stdout and stderr unless the command succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `/api/v1/query?query=<q>` URL of a Prometheus at `base` (percent-encoded).
pub fn query_url(base: &str, q: &str) -> String {
    format!("{base}/api/v1/query?query={}", percent_encode(q))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces Grafana's variables in a panel query by values Prometheus can
/// run: `$__rate_interval` and `$__interval` by `1m`, `$__range` by `5m`,
/// any other `$var` / `${var}` by `.*` (every dashboard variable is a
/// multi-value regex matcher with "All" = `.*`).
pub fn grafana_to_promql(expr: &str) -> String {
    let re = regex::Regex::new(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)").expect("regex");
    re.replace_all(expr, |c: &regex::Captures| {
        let name = c
            .get(1)
            .or_else(|| c.get(2))
            .map(|m| m.as_str())
            .unwrap_or("");
        match name {
            "__rate_interval" | "__interval" => "1m".to_string(),
            "__range" => "5m".to_string(),
            _ => ".*".to_string(),
        }
    })
    .into_owned()
}

/// The series selectors of a PromQL expression that name a metric (`lull_*`
/// or `up`), with their label matchers: `lull_x{a="b"}`.
pub fn selectors(promql: &str) -> Vec<String> {
    let re =
        regex::Regex::new(r#"(^|[^A-Za-z0-9_:"=~!])((?:lull_[A-Za-z0-9_]+)|up)\b(\{[^{}]*\})?"#)
            .expect("regex");
    let mut out: Vec<String> = re
        .captures_iter(promql)
        .filter(|c| {
            // A function name or a by/without label list is not a selector.
            let end = c.get(0).map(|m| m.end()).unwrap_or(0);
            !promql[end..].trim_start().starts_with('(')
        })
        .map(|c| format!("{}{}", &c[2], c.get(3).map(|m| m.as_str()).unwrap_or("")))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn selectors_are_found() {
    let q = r#"sum by (host) (rate(lull_a_total{host=~"$host"}[1m])) / on() up{job="lull-agent"} + lull_b"#;
    assert_eq!(
        selectors(&grafana_to_promql(q)),
        vec![
            r#"lull_a_total{host=~".*"}"#.to_string(),
            "lull_b".to_string(),
            r#"up{job="lull-agent"}"#.to_string()
        ]
    );
    assert_eq!(
        grafana_to_promql("x[$__rate_interval] ${host:regex} $__range"),
        "x[1m] .* 5m"
    );
    assert_eq!(percent_encode("a b{\"}"), "a%20b%7B%22%7D");
}
