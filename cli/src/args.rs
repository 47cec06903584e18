//! lullctl's global flags: the output format (`-o`), and the connection
//! flags, the client's part of the shared
//! configuration (NATS and the subject prefix). The servers' own settings
//! (`--metrics-addr`, `--log`) have no flag here; a shared config file or
//! `LULL_*` variable may still set them, and lullctl ignores them.

use std::path::PathBuf;

use lull_common::config::{CommonConfig, Secret};
use serde::Serialize;

/// Connection flags. Each is optional: an absent flag leaves the value to
/// the file, the environment or the default. Passwords and tokens have no
/// flags (they would show in `ps`); use the file or the environment.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct ClientArgs {
    /// TOML configuration file (also `LULL_CONFIG`).
    #[arg(long, env = "LULL_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective connection settings (secrets redacted) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// NATS server URL(s), comma separated (also `LULL_NATS_URL`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// NATS credentials file (also `LULL_NATS_CREDS`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_creds: Option<PathBuf>,
    /// NATS user (also `LULL_NATS_USER`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_user: Option<String>,
    /// CA certificate for NATS TLS (also `LULL_NATS_CA`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_ca: Option<PathBuf>,
    /// Subject prefix (also `LULL_SUBJECT_PREFIX`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
}

/// How a command prints its result (`-o`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// One JSON document, the same shape every time (times as RFC 3339).
    Json,
}

/// What `--print-config` shows: the settings lullctl uses.
#[derive(Debug, Serialize)]
pub struct ClientView<'a> {
    nats_url: &'a str,
    nats_creds: Option<&'a PathBuf>,
    nats_user: Option<&'a str>,
    nats_password: Option<&'a Secret>,
    nats_token: Option<&'a Secret>,
    nats_ca: Option<&'a PathBuf>,
    nats_inbox_prefix: Option<&'a str>,
    subject_prefix: &'a str,
}

/// The client's part of `cfg`.
pub fn client_view(cfg: &CommonConfig) -> ClientView<'_> {
    ClientView {
        nats_url: &cfg.nats_url,
        nats_creds: cfg.nats_creds.as_ref(),
        nats_user: cfg.nats_user.as_deref(),
        nats_password: cfg.nats_password.as_ref(),
        nats_token: cfg.nats_token.as_ref(),
        nats_ca: cfg.nats_ca.as_ref(),
        nats_inbox_prefix: cfg.nats_inbox_prefix.as_deref(),
        subject_prefix: &cfg.subject_prefix,
    }
}
