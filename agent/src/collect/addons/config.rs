//! The addon family's config types: `[addon]` settings and one
//! `[[addons]]` entry, with their documented defaults. A leaf, shared by
//! the family's three collectors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Addon collector settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AddonSettings {
    /// Time budget of one runtime-dir walk, milliseconds; a walk that runs
    /// out keeps the previous size and reports an error. Default 2000.
    pub dir_walk_budget_ms: u64,
    /// Most directory entries visited by one walk. Default 200000.
    pub dir_walk_max_entries: u64,
    /// Largest accepted `lull-stats.json`, bytes. Default 65536.
    pub custom_max_bytes: u64,
    /// Largest health-check HTTP response read, bytes. Default 65536.
    pub health_max_body_bytes: usize,
}

impl Default for AddonSettings {
    fn default() -> Self {
        AddonSettings {
            dir_walk_budget_ms: 2000,
            dir_walk_max_entries: 200_000,
            custom_max_bytes: 64 * 1024,
            health_max_body_bytes: 64 * 1024,
        }
    }
}

/// One declared addon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddonConfig {
    /// Addon id (a subject token).
    pub id: String,
    /// Whether it is enabled. Default true.
    pub enabled: bool,
    /// Its runtime directory: `installed` means it exists; its size is
    /// reported; `lull-stats.json` in it fills `custom`.
    pub runtime_dir: Option<PathBuf>,
    /// Pid file of its process (`running` means that pid is alive).
    pub pidfile: Option<PathBuf>,
    /// Process name of its process (alternative to `pidfile`).
    pub process: Option<String>,
    /// Health check: `http://host:port/path`, 2xx = OK.
    pub health_url: Option<String>,
    /// Health check: a command and its arguments (no shell), exit 0 = OK.
    pub health_command: Option<Vec<String>>,
    /// Health-check timeout, seconds. Default 5.
    pub health_timeout_sec: f64,
}

impl Default for AddonConfig {
    fn default() -> Self {
        AddonConfig {
            id: String::new(),
            enabled: true,
            runtime_dir: None,
            pidfile: None,
            process: None,
            health_url: None,
            health_command: None,
            health_timeout_sec: 5.0,
        }
    }
}
