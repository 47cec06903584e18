//! `lull_tests`: the end-to-end harness. It runs real `nats-server -js` and
//! Postgres processes on free 127.0.0.1 ports with temporary state, runs the
//! project's own binaries as child processes, and tears everything down on
//! drop — including on panic, and (via a parent-death signal) even when the
//! test process itself dies. See `docs/testing.md`.
#![warn(missing_docs)]

use std::path::Path;
use std::time::Duration;

pub mod bins;
pub mod checker;
pub mod error;
pub mod http;
pub mod janitor;
pub mod lease_load;
pub mod nats;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod promtool;
pub mod proxy;
pub mod service;
pub mod wait;

pub use error::{HarnessError, Result, INSTALL_HINT};
pub use http::{http_get, scrape, HttpResponse};
pub use nats::NatsServer;
pub use ports::free_port;
pub use postgres::Postgres;
pub use service::{Finished, Service, ServiceBuilder};
pub use wait::{wait_for, wait_until};

/// How long a server may take to become ready after being spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a log's end is quoted in start-failure errors.
const LOG_TAIL_BYTES: usize = 4000;

/// The last [`LOG_TAIL_BYTES`] of a log file (lossy UTF-8), or a note when
/// it cannot be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// NATS and Postgres together, started concurrently: what most end-to-end
/// tests need before starting the coordinator and agents.
#[derive(Debug)]
pub struct Infra {
    /// The NATS server.
    pub nats: NatsServer,
    /// The Postgres cluster.
    pub pg: Postgres,
}

impl Infra {
    /// Starts both servers concurrently and waits until both are ready.
    pub async fn start() -> Result<Infra> {
        let (nats, pg) = tokio::try_join!(NatsServer::start(), Postgres::start())?;
        Ok(Infra { nats, pg })
    }

    /// The environment pointing a Lull binary at these servers:
    /// `LULL_NATS_URL` and `LULL_DATABASE_URL`.
    pub fn lull_env(&self) -> Vec<(String, String)> {
        vec![
            ("LULL_NATS_URL".into(), self.nats.url()),
            ("LULL_DATABASE_URL".into(), self.pg.url()),
        ]
    }
}
