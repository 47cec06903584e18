//! Connecting to NATS with every authentication option of PROTOCOL.md.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use crate::config::CommonConfig;

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The credentials file could not be read.
    #[error("reading NATS credentials {path}: {source}")]
    Creds {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server could not be reached or refused us.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        source: async_nats::ConnectError,
    },
}

/// Builds connect options from the configuration: creds file, user and
/// password, token, and a CA for TLS (which also requires TLS).
pub async fn options(cfg: &CommonConfig, name: &str) -> Result<ConnectOptions, NatsError> {
    let mut opts = match &cfg.nats_creds {
        Some(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|source| NatsError::Creds {
                path: path.display().to_string(),
                source,
            })?,
        None => ConnectOptions::new(),
    };
    if let Some(user) = &cfg.nats_user {
        let pass = cfg
            .nats_password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        opts = opts.user_and_password(user.clone(), pass);
    }
    if let Some(token) = &cfg.nats_token {
        opts = opts.token(token.expose().to_string());
    }
    if let Some(prefix) = &cfg.nats_inbox_prefix {
        opts = opts.custom_inbox_prefix(prefix);
    }
    if let Some(ca) = &cfg.nats_ca {
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
    cfg: &CommonConfig,
    name: &str,
    retry_initial: bool,
) -> Result<Client, NatsError> {
    let mut opts = options(cfg, name).await?;
    if retry_initial {
        opts = opts.retry_on_initial_connect();
    }
    opts.connect(cfg.nats_url.as_str())
        .await
        .map_err(|source| NatsError::Connect {
            url: cfg.nats_url.clone(),
            source,
        })
}
