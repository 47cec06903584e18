//! Connecting to NATS with every authentication option of the protocol:
//! a credentials file (JWT + nkey), user and password, a token, a custom
//! inbox prefix, and TLS with a private CA. One or more server URLs; the
//! client fails over between them.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

/// Where and how to connect. Binaries build it from their configuration;
/// SDK users fill it in directly.
#[derive(Clone, Default)]
pub struct NatsSettings {
    /// Server URL(s), comma separated (`nats://a:4222,nats://b:4222`).
    pub url: String,
    /// Credentials file (JWT + nkey).
    pub creds: Option<PathBuf>,
    /// User name.
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// CA certificate (PEM) that verifies the server; turns TLS on.
    pub ca: Option<PathBuf>,
    /// Prefix of this client's reply subjects (default `_INBOX`).
    pub inbox_prefix: Option<String>,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsSettings")
            .field("url", &self.url)
            .field("creds", &self.creds)
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("token", &redacted(&self.token))
            .field("ca", &self.ca)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The credentials file could not be read.
    #[error("reading NATS credentials {path}")]
    Creds {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be reached or refused us.
    #[error("connecting to NATS at {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::ConnectError,
    },
}

/// Builds connect options from the settings: creds file, user and
/// password, token, and a CA for TLS (which also requires TLS).
pub async fn options(cfg: &NatsSettings, name: &str) -> Result<ConnectOptions, NatsError> {
    let mut opts = match &cfg.creds {
        Some(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|source| NatsError::Creds {
                path: path.display().to_string(),
                source,
            })?,
        None => ConnectOptions::new(),
    };
    if let Some(user) = &cfg.user {
        let pass = cfg.password.clone().unwrap_or_default();
        opts = opts.user_and_password(user.clone(), pass);
    }
    if let Some(token) = &cfg.token {
        opts = opts.token(token.clone());
    }
    if let Some(prefix) = &cfg.inbox_prefix {
        opts = opts.custom_inbox_prefix(prefix);
    }
    if let Some(ca) = &cfg.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(opts
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .ping_interval(Duration::from_secs(10)))
}

/// Connects. With `retry_initial`, a server that is down at start does not
/// fail the call: the client connects in the background and buffers.
pub async fn connect(
    cfg: &NatsSettings,
    name: &str,
    retry_initial: bool,
) -> Result<Client, NatsError> {
    let mut opts = options(cfg, name).await?;
    if retry_initial {
        opts = opts.retry_on_initial_connect();
    }
    opts.connect(cfg.url.as_str())
        .await
        .map_err(|source| NatsError::Connect {
            url: cfg.url.clone(),
            source,
        })
}
