//! Persistence in Postgres: the connection pool, versioned migrations, and
//! one module per table family.

pub mod blocks;
pub mod history;
pub mod hosts;
pub mod leases;
pub(crate) mod metrics;
pub mod migrations;
pub mod regions;
pub mod workers;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(String),
    /// The pool could not be built or could not hand out a connection.
    #[error("database pool: {0}")]
    Pool(String),
    /// A statement failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A value could not be encoded for a JSON column.
    #[error("encoding a stored document: {0}")]
    Encode(String),
    /// A stored document could not be decoded.
    #[error("decoding a stored document: {0}")]
    Decode(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e.to_string())
    }
}

/// Builds a pool for `url` with at most `size` connections. No connection is
/// opened until the first use.
pub fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let cfg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The error text never contains the password, but say which part failed.
        StoreError::Url(e.to_string())
    })?;
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size.max(1))
        .build()
        .map_err(|e| StoreError::Pool(e.to_string()))
}
