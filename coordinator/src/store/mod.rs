//! Persistence in Postgres: the connection pool, versioned migrations, and
//! one module per table family.

pub mod blocks;
pub mod fence;
pub mod history;
pub mod hosts;
pub mod leases;
pub(crate) mod metrics;
pub mod migrations;
pub mod queue;
pub mod regions;
pub mod workers;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// A store operation failed. Every variant with a cause keeps it as its
/// `source` (the message repeats it, so log lines read whole).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The pool could not be built.
    #[error("database pool: {0}")]
    Build(#[source] deadpool_postgres::BuildError),
    /// The pool could not hand out a connection.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// This coordinator runs without a database.
    #[error("database pool: no database configured")]
    NoDatabase,
    /// A statement failed (the server's message, when it sent one).
    #[error("database: {}", db_detail(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A value could not be encoded for a JSON column.
    #[error("encoding a stored document: {0}")]
    Encode(#[source] serde_json::Error),
    /// A stored document could not be decoded.
    #[error("decoding a stored document: {what}: {source}")]
    Decode {
        /// Which document (table, column, row).
        what: String,
        /// Why it could not be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// What is stored contradicts what the one writer wrote.
    #[error("decoding a stored document: {0}")]
    Inconsistent(String),
    /// This process no longer leads: another coordinator took over, so its
    /// write was refused (see `store::fence`).
    #[error("fenced: this coordinator writes in epoch {mine}, the current epoch is {current}")]
    Fenced {
        /// The epoch this process writes under (0: not leading).
        mine: u64,
        /// The epoch in the election row.
        current: u64,
    },
}

/// A driver error with the server's own message (`db error` alone says
/// nothing): `<severity> <code>: <message>`.
fn db_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}: {}", d.severity(), d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// A table of JSON documents keyed by a text id.
#[derive(Debug, Clone, Copy)]
pub struct DocTable {
    /// The table.
    pub table: &'static str,
    /// Its id column.
    pub id: &'static str,
    /// Its JSONB document column.
    pub doc: &'static str,
}

/// Which of `items` (`(id, document)`, ids already stored in `t`) were
/// stored with other content: conflicting duplicates. Compared as JSONB,
/// so key order and number spelling do not matter.
pub async fn differing<T: serde::Serialize + std::fmt::Debug + Sync>(
    tx: &tokio_postgres::Transaction<'_>,
    t: DocTable,
    items: &[(&str, &T)],
) -> Result<std::collections::HashSet<String>, StoreError> {
    if items.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
    let docs: Vec<tokio_postgres::types::Json<&T>> = items
        .iter()
        .map(|(_, d)| tokio_postgres::types::Json(*d))
        .collect();
    let sql = format!(
        "SELECT s.{id} FROM {table} s
         JOIN UNNEST($1::text[], $2::jsonb[]) AS u(id, doc) ON s.{id} = u.id
         WHERE s.{doc} IS DISTINCT FROM u.doc",
        table = t.table,
        id = t.id,
        doc = t.doc
    );
    let rows = tx.query(&sql, &[&ids, &docs]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

impl StoreError {
    /// A [`StoreError::Decode`] of the document `what`.
    pub fn decode(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Decode {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Builds a pool for `url` with at most `size` connections. No connection is
/// opened until the first use.
pub fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    pool_with(url, size, None)
}

/// Like [`pool`]; with `idle_in_transaction`, Postgres ends a session of
/// the pool that sits idle inside a transaction for that long, so that a
/// paused former leader cannot hold its fencing lock (and so block a
/// takeover) for longer.
pub fn pool_with(
    url: &str,
    size: usize,
    idle_in_transaction: Option<std::time::Duration>,
) -> Result<Pool, StoreError> {
    // The error text never contains the password, but says which part failed.
    let mut cfg: tokio_postgres::Config = url.parse().map_err(StoreError::Url)?;
    if let Some(t) = idle_in_transaction {
        cfg.options(format!(
            "-c idle_in_transaction_session_timeout={}",
            t.as_millis().max(1)
        ));
    }
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
        .map_err(StoreError::Build)
}
