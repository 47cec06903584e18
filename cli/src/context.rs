//! The per-user context file: where lullctl finds its NATS when neither
//! `--config`/`LULL_CONFIG` nor `LULL_*` variables say. `deploy/local/run.sh`
//! writes it for the local system it starts, so that `lullctl` in another
//! terminal reaches that system with no export (like a kubeconfig or a
//! `nats context`). It is a lullctl configuration file (TOML, the keys of
//! `lullctl --print-config`); environment variables and flags still win.

use std::path::PathBuf;

/// `$LULL_CONTEXT`, else `$XDG_CONFIG_HOME/lull/lullctl.toml`, else
/// `~/.config/lull/lullctl.toml`.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LULL_CONTEXT").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("lull").join("lullctl.toml"))
}

/// The context file, when one exists.
pub fn file_if_present() -> Option<PathBuf> {
    path().filter(|p| p.is_file())
}
