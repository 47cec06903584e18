//! Connecting to NATS with every authentication option of the protocol:
//! a credentials file (JWT + nkey), user and password, a token, a custom
//! inbox prefix, and TLS with a private CA. One or more server URLs; the
//! client fails over between them.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};

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
    /// The server URL list is empty or one of its URLs is not valid.
    #[error("invalid NATS server URL list {url:?}")]
    Url {
        /// The list as given.
        url: String,
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

/// Splits a comma-separated server list (`nats://a:4222, nats://b:4222`)
/// into server addresses, ignoring blanks around and between the commas.
/// async-nats parses a string as one address, so a list must be split
/// before it is handed to [`ConnectOptions::connect`]. Fails on an empty
/// list or an invalid URL.
pub fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, NatsError> {
    let invalid = |source| NatsError::Url {
        url: urls.to_string(),
        source,
    };
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::parse::<ServerAddr>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if addrs.is_empty() {
        return Err(invalid(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no server URL",
        )));
    }
    Ok(addrs)
}

/// Connects to the servers of `cfg.url` (one URL or a comma-separated
/// list; the client fails over between them and the servers the cluster
/// announces). With `retry_initial`, a server that is down at start does
/// not fail the call: the client connects in the background and buffers.
pub async fn connect(
    cfg: &NatsSettings,
    name: &str,
    retry_initial: bool,
) -> Result<Client, NatsError> {
    let addrs = server_addrs(&cfg.url)?;
    let mut opts = options(cfg, name).await?;
    if retry_initial {
        opts = opts.retry_on_initial_connect();
    }
    opts.connect(addrs)
        .await
        .map_err(|source| NatsError::Connect {
            url: cfg.url.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_is_split() {
        let addrs = server_addrs("nats://127.0.0.1:4222, nats://10.0.0.2:4223,,tls://n3:4224")
            .expect("valid list");
        let hosts: Vec<(String, u16)> = addrs
            .iter()
            .map(|a| (a.host().to_string(), a.port()))
            .collect();
        assert_eq!(
            hosts,
            vec![
                ("127.0.0.1".to_string(), 4222),
                ("10.0.0.2".to_string(), 4223),
                ("n3".to_string(), 4224),
            ]
        );
        assert!(addrs[2].tls_required());
    }

    #[test]
    fn one_url_stays_one_address() {
        let addrs = server_addrs("nats://127.0.0.1:4222").expect("valid");
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].port(), 4222);
    }

    #[test]
    fn an_empty_or_invalid_list_is_an_error() {
        assert!(matches!(server_addrs(" , "), Err(NatsError::Url { .. })));
        assert!(matches!(
            server_addrs("nats://a:4222,http://b:80"),
            Err(NatsError::Url { .. })
        ));
    }
}
