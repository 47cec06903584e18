//! The harness's error type: every failure names what was being done and, for
//! processes that failed to start, carries the tail of their log.

use std::time::Duration;

/// The install command printed when an external binary is missing.
pub const INSTALL_HINT: &str = "apt-get install -y nats-server postgresql";

/// Everything that can go wrong while starting, driving or stopping the
/// harness's processes.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An external tool (`nats-server`, `initdb`, `postgres`) was not found.
    #[error("`{name}` not found (looked in: {looked_in}); install it with: {INSTALL_HINT}")]
    MissingBinary {
        /// The binary's file name.
        name: String,
        /// The directories that were searched, comma separated.
        looked_in: String,
    },
    /// One of the project's own binaries is not in the cargo target dir.
    #[error(
        "`{name}` is not built (looked in: {looked_in}); run `cargo build --workspace` first \
         (with the same CARGO_TARGET_DIR and profile as the tests)"
    )]
    NotBuilt {
        /// The binary's name (`lull-coordinator`, `lull-agent`, `lullctl`).
        name: String,
        /// The directories that were searched, comma separated.
        looked_in: String,
    },
    /// Running as root, Postgres must run as the `postgres` OS user, which is missing.
    #[error(
        "running as root, but there is no `postgres` OS user to run Postgres as \
         (Postgres refuses to run as root); install it with: {INSTALL_HINT}"
    )]
    NoPostgresUser,
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A process exited or misbehaved while it was being started.
    #[error("{what} failed to start: {reason}\n--- log tail ---\n{log}")]
    StartFailed {
        /// Which process.
        what: String,
        /// Why it is considered failed.
        reason: String,
        /// The last part of its log.
        log: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// An HTTP request of the scrape helper failed.
    #[error("HTTP GET {url}: {reason}")]
    Http {
        /// The requested URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A Postgres client operation failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A NATS client operation failed.
    #[error("nats: {0}")]
    Nats(String),
}

impl HarnessError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias used throughout the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
