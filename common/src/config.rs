//! Configuration shared by every binary: flags, then a TOML file
//! (`--config` / `LULL_CONFIG`), then `LULL_*` environment variables, then
//! defaults, in that order of precedence. Secrets are wrapped in [`Secret`]
//! so that they never appear in logs or in `--print-config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use lull_client::connect::NatsSettings;
use lull_proto::validate::DEFAULT_MAX_PAYLOAD;

/// A secret string: readable by code through [`Secret::expose`], shown as
/// `<redacted>` by `Debug`, `Display` and `Serialize`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(#[serde(deserialize_with = "string_like")] String);

/// Accepts a string, or a number or boolean rendered as a string (an
/// environment variable such as `LULL_NATS_PASSWORD=12345` parses as a number).
fn string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        S(String),
        U(u64),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Any::deserialize(d)? {
        Any::S(s) => s,
        Any::U(v) => v.to_string(),
        Any::I(v) => v.to_string(),
        Any::F(v) => v.to_string(),
        Any::B(v) => v.to_string(),
    })
}

fn opt_string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "string_like")] String);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value, for handing to a connection.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings both binaries share (NATS connection, subjects, metrics, logs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// NATS server URL(s), comma separated. Env `LULL_NATS_URL`.
    pub nats_url: String,
    /// NATS credentials file (JWT + nkey). Env `LULL_NATS_CREDS`.
    pub nats_creds: Option<PathBuf>,
    /// NATS user name. Env `LULL_NATS_USER`.
    #[serde(deserialize_with = "opt_string_like")]
    pub nats_user: Option<String>,
    /// NATS password. Env `LULL_NATS_PASSWORD`.
    pub nats_password: Option<Secret>,
    /// NATS token. Env `LULL_NATS_TOKEN`.
    pub nats_token: Option<Secret>,
    /// CA certificate (PEM) to verify the NATS server's TLS. Env `LULL_NATS_CA`.
    pub nats_ca: Option<PathBuf>,
    /// Prefix of this client's reply subjects. Env `LULL_NATS_INBOX_PREFIX`.
    /// Default: none, which means NATS' `_INBOX`. A locked-down server gives
    /// each user its own (for example `_INBOX.agent-web1`, see
    /// `deploy/nats/`), so that no client can read another's replies.
    #[serde(deserialize_with = "opt_string_like")]
    pub nats_inbox_prefix: Option<String>,
    /// Prefix of every subject. Env `LULL_SUBJECT_PREFIX`.
    pub subject_prefix: String,
    /// Prometheus listener. Env `LULL_METRICS_ADDR`.
    pub metrics_addr: SocketAddr,
    /// Log filter (`info`, `lull_coordinator=debug`). Env `LULL_LOG`.
    #[serde(deserialize_with = "string_like")]
    pub log: String,
    /// Log format. Env `LULL_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Largest accepted payload from the network, bytes.
    pub max_payload_bytes: usize,
}

impl CommonConfig {
    /// Defaults with the given metrics listener.
    pub fn with_metrics_addr(metrics_addr: SocketAddr) -> Self {
        CommonConfig {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_ca: None,
            nats_inbox_prefix: None,
            subject_prefix: lull_proto::subjects::DEFAULT_PREFIX.into(),
            metrics_addr,
            log: "info".into(),
            log_format: LogFormat::Text,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD,
        }
    }

    /// The NATS connection settings, for [`lull_client::connect`].
    pub fn nats(&self) -> NatsSettings {
        NatsSettings {
            url: self.nats_url.clone(),
            creds: self.nats_creds.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.as_ref().map(|p| p.expose().to_string()),
            token: self.nats_token.as_ref().map(|t| t.expose().to_string()),
            ca: self.nats_ca.clone(),
            inbox_prefix: self.nats_inbox_prefix.clone(),
        }
    }

    /// Whether any NATS authentication is configured.
    pub fn auth_enabled(&self) -> bool {
        self.nats_creds.is_some() || self.nats_user.is_some() || self.nats_token.is_some()
    }
}

impl Default for CommonConfig {
    fn default() -> Self {
        CommonConfig::with_metrics_addr(SocketAddr::from(([0, 0, 0, 0], 9464)))
    }
}

/// Flags both binaries share. Each is optional: an absent flag leaves the
/// value to the file, the environment or the default. Passwords and tokens
/// have no flags (they would show in `ps`); use the file or the environment.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct CommonArgs {
    /// TOML configuration file (also `LULL_CONFIG`).
    #[arg(long, env = "LULL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// NATS server URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// NATS credentials file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_creds: Option<PathBuf>,
    /// NATS user.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_user: Option<String>,
    /// CA certificate for NATS TLS.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_ca: Option<PathBuf>,
    /// Subject prefix.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// Prometheus listener address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log filter.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source had a bad value or could not be read.
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    /// The named config file does not exist.
    #[error("configuration file {0} not found")]
    MissingFile(PathBuf),
}

/// Loads `T` from defaults, `LULL_*` environment variables (nested keys with
/// `__`, as in `LULL_QUIET__CPU_BUSY_PCT`), the TOML file and the flags, each
/// overriding the one before. `overrides` is the flags struct, serialised with
/// absent flags skipped.
pub fn load<T, D, O>(defaults: &D, file: Option<&PathBuf>, overrides: &O) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    D: Serialize,
    O: Serialize,
{
    load_with_env(
        defaults,
        file,
        overrides,
        Env::prefixed("LULL_").split("__"),
    )
}

/// `defaults` with the keys of the TOML file at `path` laid over them: a
/// file below the environment in precedence (lullctl's context file), to
/// pass as the `defaults` of [`load`].
pub fn with_base_file<D>(defaults: &D, path: &std::path::Path) -> Result<D, ConfigError>
where
    D: Serialize + DeserializeOwned,
{
    Figment::from(Serialized::defaults(defaults))
        .merge(Toml::file(path))
        .extract()
        .map_err(|e| ConfigError::Figment(Box::new(e)))
}

fn load_with_env<T, D, O>(
    defaults: &D,
    file: Option<&PathBuf>,
    overrides: &O,
    env: Env,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    D: Serialize,
    O: Serialize,
{
    let mut fig = Figment::from(Serialized::defaults(defaults)).merge(env.ignore(&["config"]));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.clone()));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Serialized::defaults(overrides));
    fig.extract().map_err(|e| ConfigError::Figment(Box::new(e)))
}

/// Renders a configuration as TOML for `--print-config` (secrets redacted).
pub fn render<T: Serialize>(cfg: &T) -> String {
    toml::to_string_pretty(cfg).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, Serialize, Deserialize)]
    struct Cfg {
        #[serde(flatten)]
        common: CommonConfig,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Nested {
        level: u32,
    }

    fn defaults() -> Cfg {
        Cfg {
            common: CommonConfig::default(),
            nested: Nested { level: 1 },
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn precedence_is_flags_then_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LULL_NATS_URL", "nats://env:1");
            jail.set_env("LULL_SUBJECT_PREFIX", "fromenv");
            jail.set_env("LULL_LOG", "debug");
            jail.set_env("LULL_NESTED__LEVEL", "7");
            jail.set_env("LULL_NATS_PASSWORD", "12345");
            jail.create_file(
                "lull.toml",
                "nats_url = \"nats://file:2\"\nsubject_prefix = \"fromfile\"\n",
            )?;
            let flags = CommonArgs {
                nats_url: Some("nats://flag:3".into()),
                ..Default::default()
            };
            let file = PathBuf::from("lull.toml");
            let cfg: Cfg = load(&defaults(), Some(&file), &flags).unwrap();
            assert_eq!(cfg.common.nats_url, "nats://flag:3");
            assert_eq!(cfg.common.subject_prefix, "fromfile");
            assert_eq!(cfg.common.log, "debug");
            assert_eq!(cfg.nested.level, 7);
            assert_eq!(cfg.common.nats_password.as_ref().unwrap().expose(), "12345");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn a_base_file_sits_below_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ctx.toml",
                "nats_url = \"nats://ctx:1\"\nsubject_prefix = \"fromctx\"\n",
            )?;
            let base = with_base_file(&CommonConfig::default(), Path::new("ctx.toml")).unwrap();
            let none = CommonArgs::default();
            let cfg: CommonConfig = load(&base, None, &none).unwrap();
            assert_eq!(cfg.nats_url, "nats://ctx:1");
            jail.set_env("LULL_NATS_URL", "nats://env:2");
            let cfg: CommonConfig = load(&base, None, &none).unwrap();
            assert_eq!(cfg.nats_url, "nats://env:2");
            assert_eq!(cfg.subject_prefix, "fromctx");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = defaults();
        c.common.nats_password = Some(Secret::new("hunter2"));
        c.common.nats_token = Some(Secret::new("tok"));
        let out = render(&c);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("tok\""), "{out}");
        assert!(out.contains("<redacted>"));
        assert!(!format!("{:?}", c.common).contains("hunter2"));
    }

    #[test]
    fn missing_file_is_an_error() {
        let file = PathBuf::from("/nonexistent/lull.toml");
        let r: Result<Cfg, _> = load(&defaults(), Some(&file), &CommonArgs::default());
        assert!(matches!(r, Err(ConfigError::MissingFile(_))));
    }
}
