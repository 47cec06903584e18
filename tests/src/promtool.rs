//! `promtool check metrics`: Prometheus's own lint of an exposition (names,
//! units, suffixes, HELP texts). `scripts/install-deploy-tools.sh` installs
//! promtool for the suite.

use std::io::Write;
use std::process::{Command, Stdio};

/// What promtool said about `exposition`: `Ok(None)` when it is clean,
/// `Ok(Some(text))` with its complaints, `Err` when promtool is not installed.
pub fn check_metrics(exposition: &str) -> std::io::Result<Option<String>> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((!out.status.success() || !said.trim().is_empty()).then_some(said))
}

/// Panics with promtool's complaints unless `exposition` is clean; skips
/// (with a note) when promtool is not installed.
pub fn assert_clean(exposition: &str) {
    match check_metrics(exposition) {
        Ok(None) => {}
        Ok(Some(said)) => panic!("promtool check metrics: {said}"),
        Err(e) => eprintln!("promtool not runnable ({e}); skipping the metrics lint"),
    }
}
